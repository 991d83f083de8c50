"""Find the Inter font on this machine (Debian's fonts-inter), to serve it to browsers.

Nothing is downloaded at run time: when Inter is not installed, pages fall back to the font
stack that starts with Inter (a browser that has it locally still uses it).
"""

from __future__ import annotations

from pathlib import Path

SEARCH = (
    Path("/usr/share/fonts/opentype/inter"),
    Path("/usr/share/fonts/truetype/inter"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".local/share/fonts",
)
WEIGHTS = {"400": "Regular", "500": "Medium", "600": "SemiBold", "700": "Bold"}


def find_inter(search: tuple[Path, ...] = SEARCH) -> dict[str, Path]:
    """{css weight: font file} for the Inter weights the inbox uses; {} when none is found."""
    found: dict[str, Path] = {}
    for folder in search:
        for weight, style in WEIGHTS.items():
            path = folder / f"Inter-{style}.otf"
            if weight not in found and path.is_file():
                found[weight] = path
    return found
