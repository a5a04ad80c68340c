"""How every VM shape treats a boot image the program looked up rather than one the user named."""

from __future__ import annotations

import pulumi


def looked_up_image_options(configured: str | None, image_property: str) -> pulumi.ResourceOptions:
    """A looked-up boot image is fixed when the machine is made: the clouds publish new Deep Learning images every
    few weeks, and an unrelated `pulumi up` must not replace serving machines for it. Setting the image (amiId,
    image) moves it on purpose."""
    return pulumi.ResourceOptions(ignore_changes=[] if configured else [image_property])
