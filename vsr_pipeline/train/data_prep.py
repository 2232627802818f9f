"""Fetch the training photographs: ``python -m vsr_pipeline.train.data_prep [--cache DIR]``.

Downloads four Debian packages with ``apt-get download`` (no root needed, nothing installed), unpacks them
with ``dpkg-deb -x`` into ``DIR/debs`` and copies the photographs listed in :data:`PHOTOS` and
:data:`EXTRA_PHOTOS` (real camera pictures, not illustrations) to ``DIR/photos`` and ``DIR/photos-extra``
(default ``DIR`` = ``$VSR_DATA_CACHE`` or ``~/.cache/vsr-data``). Nothing is committed to the repository.
The clips in ``../shared/data/videos`` are read where they lie. Benchmark sets
(``../shared/data/benchmarks``) are never used for training.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

from vsr_pipeline.train.config import DEFAULT_CACHE

#: Debian packages fetched (version seen on Debian 12 bookworm): mate-backgrounds 1.26.0-1 (nature
#: photographs), plasma-workspace-wallpapers (KDE Plasma 5 wallpapers, a dozen photographs among them),
#: lomiri-wallpapers-20.04 20.04.0-2 (one photograph used: a tree trunk, 6028x3391)
PACKAGES = (
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
    "lomiri-wallpapers-20.04",
    "lomiri-wallpapers-16.04",
)

#: photograph -> path inside the unpacked packages (largest size of each)
PHOTOS = {
    "mate-aqua": "usr/share/backgrounds/mate/nature/Aqua.jpg",
    "mate-blinds": "usr/share/backgrounds/mate/nature/Blinds.jpg",
    "mate-dune": "usr/share/backgrounds/mate/nature/Dune.jpg",
    "mate-freshflower": "usr/share/backgrounds/mate/nature/FreshFlower.jpg",
    "mate-garden": "usr/share/backgrounds/mate/nature/Garden.jpg",
    "mate-greenmeadow": "usr/share/backgrounds/mate/nature/GreenMeadow.jpg",
    "mate-ladybird": "usr/share/backgrounds/mate/nature/LadyBird.jpg",
    "mate-raindrops": "usr/share/backgrounds/mate/nature/RainDrops.jpg",
    "mate-storm": "usr/share/backgrounds/mate/nature/Storm.jpg",
    "mate-twowings": "usr/share/backgrounds/mate/nature/TwoWings.jpg",
    "mate-wood": "usr/share/backgrounds/mate/nature/Wood.jpg",
    "mate-yellowflower": "usr/share/backgrounds/mate/nature/YellowFlower.jpg",
    "mate-elephants": "usr/share/backgrounds/mate/abstract/Elephants_3840x2160.jpg",
    "lomiri-kleiber": "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
    "plasma-bythewater": "usr/share/wallpapers/BytheWater/contents/images/1920x1080.jpg",
    "plasma-coldripple": "usr/share/wallpapers/ColdRipple/contents/images/1920x1080.jpg",
    "plasma-colorfulcups": "usr/share/wallpapers/ColorfulCups/contents/images/2560x1600.jpg",
    "plasma-eveningglow": "usr/share/wallpapers/EveningGlow/contents/images/1920x1080.jpg",
    "plasma-fallenleaf": "usr/share/wallpapers/FallenLeaf/contents/images/1920x1080.jpg",
    "plasma-grey": "usr/share/wallpapers/Grey/contents/images/1920x1080.jpg",
    "plasma-kite": "usr/share/wallpapers/Kite/contents/images/1920x1080.jpg",
    "plasma-onestandsout": "usr/share/wallpapers/OneStandsOut/contents/images/1920x1080.jpg",
    "plasma-path": "usr/share/wallpapers/Path/contents/images/1920x1080.jpg",
    "plasma-summer1am": "usr/share/wallpapers/summer_1am/contents/images/1920x1080.jpg",
}

#: photograph -> path, from lomiri-wallpapers-16.04 20.04.0-2 (Ubuntu's 16.04 wallpaper contest photographs:
#: leaves, rocks and water, brushes, wood, grass, mountains). Copied to ``DIR/photos-extra`` so that configs
#: reading ``DIR/photos`` keep training on the original set.
EXTRA_PHOTOS = {
    "lomiri-dragonfly": "usr/share/backgrounds/Dragonfly_by_Bolly.jpg",
    "lomiri-fig": "usr/share/backgrounds/Picture_0B_by_freespace.jpg",
    "lomiri-brushes": "usr/share/backgrounds/Picture_1A_by_freespace.jpg",
    "lomiri-wine": "usr/share/backgrounds/Wine_by_Jakkub_Mede.jpg",
    "lomiri-aitzgorri": "usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg",
    "lomiri-lamps": "usr/share/backgrounds/free_by_Peter_Nerlich.jpg",
    "lomiri-friends": "usr/share/backgrounds/friends_by_Aitzol_Berasategi.jpg",
    "lomiri-life": "usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg",
    "lomiri-picosdeeuropa": "usr/share/backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg",
    "lomiri-seeding": "usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg",
    "lomiri-sunset": "usr/share/backgrounds/sunset_by_Aitzol_Berasategi.jpg",
}

#: destination folder (under the cache) -> photographs copied there
PHOTO_SETS = {"photos": PHOTOS, "photos-extra": EXTRA_PHOTOS}

#: held out for validation (never trained on); chosen for texture (boats and gravel; grass and flowers)
VAL_PHOTOS = ["plasma-eveningglow", "mate-ladybird"]


def fetch(cache: Path) -> list[Path]:
    """Download + unpack the packages (skipped when already there) and copy the photos; returns them."""
    debs, unpacked = cache / "debs", cache / "unpacked"
    for d in (debs, unpacked, *(cache / folder for folder in PHOTO_SETS)):
        d.mkdir(parents=True, exist_ok=True)
    for pkg in PACKAGES:
        if not list(debs.glob(f"{pkg}_*.deb")):
            subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True)
        deb = sorted(debs.glob(f"{pkg}_*.deb"))[-1]
        marker = unpacked / f".{deb.name}.done"
        if not marker.exists():
            subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
            marker.touch()
    out = []
    for folder, photos in PHOTO_SETS.items():
        for name, rel in photos.items():
            src = unpacked / rel
            if not src.is_file():
                raise FileNotFoundError(f"{src} is missing: the package layout changed")
            dst = cache / folder / f"{name}{src.suffix.lower()}"
            if not dst.exists():
                shutil.copyfile(src, dst)
            out.append(dst)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    for p in fetch(args.cache.expanduser()):
        print(p)


if __name__ == "__main__":
    main()
