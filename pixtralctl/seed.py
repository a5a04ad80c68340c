"""The seed request of the SkyPilot Pixtral guide: text, image, text, image, as OpenAI chat content."""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path

from .target import TargetError

SEED_IMAGES = (
    "https://s3.amazonaws.com/cms.ipressroom.com/338/files/201808/5b894ee1a138352221103195_A680%7Ejogging-edit/"
    "A680%7Ejogging-edit_hero.jpg",
    "https://www.wolframcloud.com/obj/resourcesystem/images/a0e/a0ee3983-46c6-4c92-b85d-059044639928/"
    "6af8cfb971db031b.png",
)
SEED_TEXTS = ("Describe this image in detail please.", "and this one as well.")


def image_url(image: str) -> str:
    """URLs pass through; a local file becomes a data: URL (what a client without a public image host sends)."""
    if image.startswith(("http://", "https://", "data:")):
        return image
    path = Path(image)
    if not path.is_file():
        raise TargetError(f"--image {image!r} is neither a URL nor a readable file")
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if not mime.startswith("image/"):
        raise TargetError(f"--image {image!r} is not an image (type {mime})")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def seed_content(images: list[str] | None) -> list[dict]:
    """Text before each image, as the seed does; the seed's texts for the first two."""
    content = []
    for index, image in enumerate(images or SEED_IMAGES):
        text = SEED_TEXTS[index] if index < len(SEED_TEXTS) else f"And image {index + 1}."
        content += [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": image_url(image)}}]
    return content


def add_image_arguments(parser) -> None:
    parser.add_argument("--image", action="append", metavar="URL_OR_FILE",
                        help="image to send (repeatable): an http(s) URL or a local file sent as a data: URL; "
                             "default: the seed's two image URLs")
    parser.add_argument("--max-tokens", type=int, default=1024, help="max_tokens of each request (default 1024)")
