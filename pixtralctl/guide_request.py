"""The request from the SkyPilot Pixtral guide (two images and a question about each: text, image, text, image),
as OpenAI chat content; smoke and bench send it."""

from __future__ import annotations

import argparse
import base64
import mimetypes
from pathlib import Path

from .errors import UsageError

GUIDE_IMAGES = (
    "https://s3.amazonaws.com/cms.ipressroom.com/338/files/201808/5b894ee1a138352221103195_A680%7Ejogging-edit/"
    "A680%7Ejogging-edit_hero.jpg",
    "https://www.wolframcloud.com/obj/resourcesystem/images/a0e/a0ee3983-46c6-4c92-b85d-059044639928/"
    "6af8cfb971db031b.png",
)
GUIDE_TEXTS = ("Describe this image in detail please.", "and this one as well.")


def image_url(image: str) -> str:
    """URLs pass through; a local file becomes a data: URL (what a client without a public image host sends)."""
    if image.startswith(("http://", "https://", "data:")):
        return image
    path = Path(image)
    if not path.is_file():
        raise UsageError(f"--image {image!r} is neither a URL nor a readable file")
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if not mime.startswith("image/"):
        raise UsageError(f"--image {image!r} is not an image (type {mime})")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def guide_content(images: list[str] | None) -> list[dict]:
    """Text before each image, as the guide's request does; the guide's own texts for the first two."""
    content = []
    for index, image in enumerate(images or GUIDE_IMAGES):
        text = GUIDE_TEXTS[index] if index < len(GUIDE_TEXTS) else f"And image {index + 1}."
        content += [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": image_url(image)}}]
    return content


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", action="append", metavar="URL_OR_FILE",
                        help="image to send (repeatable): an http(s) URL or a local file sent as a data: URL; "
                             "default: the two image URLs of the request from the SkyPilot Pixtral guide")
    parser.add_argument("--max-tokens", type=int, default=1024, help="max_tokens of each request (default 1024)")
