"""What ``--field-match`` gives on telecined film, against deinterlacing each frame (the default).

    python benchmarks/quality_field_match.py [--model espcn] [--start 100] [--json PATH]

Ground truth: 20 frames of bigbuckbunny.mp4 (real footage, not a benchmark set) at 640x384. LR: MATLAB
bicubic x4 to 160x96, telecined by FFmpeg's ``telecine`` filter (3:2 pulldown, top field first) into 25
frames, stored as an NTSC DVD stores it: interlaced MPEG-2 at quantiser 2 (``tests/test_field_match.py``
makes the same clip). Then ``vsr upscale --model M --scale 4`` with and without ``--field-match``, with
``--field-match --decimate`` (the repeat in every five frames dropped: 20 frames), and of the 20 LR
pictures themselves (lossless, progressive: no telecine, ``progressive_source``). Each output frame is
scored against the closest ground-truth picture (Y-PSNR, BT.601, 4-pixel border), and the reader's own
frames (before the model) against the closest LR picture; ``pictures`` counts the ground-truth pictures
that are some output frame's closest (20: each shown). Two controls tell the pulldown's cost from the
format's: the 20 pictures never telecined as lossless FFV1 4:2:0 (``progressive_420``: chroma subsampled
as on a DVD) and as progressive MPEG-2 at quantiser 2, 4:2:0 (``progressive_mpeg2``: a DVD's coding too).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    import av

    from tests.test_field_match import BBB, telecine, write
    from vsr_pipeline import UpscaleOptions, upscale
    from vsr_pipeline.degrade import degrade_bi
    from vsr_pipeline.media import FrameReader
    from vsr_pipeline.metrics import psnr_y

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="espcn")
    ap.add_argument("--start", type=int, default=100, help="first frame of bigbuckbunny.mp4 used")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "field_match.json")
    args = ap.parse_args()

    with av.open(str(BBB)) as c:
        frames = zip(range(args.start + 20), c.decode(video=0), strict=False)
        hr = np.stack([f.reformat(width=640, height=384).to_ndarray(format="rgb24")
                       for i, f in frames if i >= args.start])
    lr = degrade_bi(hr, 4)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        pictures = [av.VideoFrame.from_ndarray(p, format="rgb24").reformat(format="yuv444p") for p in lr]
        with FrameReader(write(d / "lr.mkv", pictures, "ffv1")) as r:  # the LR pictures as the reader reads
            lr_read = r.read(100)[0]
        write(d / "dvd.mpg", telecine(pictures))
        result: dict[str, object] = {"model": args.model, "frames": f"{args.start}-{args.start + 19}",
                                     "lr": "160x96 bi x4, telecined, MPEG-2 q2 interlaced"}
        # the same pictures before telecine (lossless, progressive): what the model makes of them unwoven
        progressive(d / "lr420.mkv", pictures, "ffv1", {})
        progressive(d / "lr.mpg", pictures, "mpeg2video", {"qmin": "2", "qmax": "2", "g": "15", "bf": "0"})
        runs = (("deinterlaced", "dvd.mpg", False, False), ("field_matched", "dvd.mpg", True, False),
                ("decimated", "dvd.mpg", True, True), ("progressive_source", "lr.mkv", False, False),
                ("progressive_420", "lr420.mkv", False, False), ("progressive_mpeg2", "lr.mpg", False, False))
        for label, src, field_match, decimate in runs:
            with FrameReader(d / src, field_match=field_match, decimate=decimate) as r:
                read, pts = r.read(100)
            read = read[[p is not None for p in pts]]
            out_path = d / f"{label}.mkv"
            upscale(d / src, out_path, UpscaleOptions(model=args.model, scale=4, crf=0, progress=False,
                                                      field_match=field_match, decimate=decimate))
            with FrameReader(out_path) as r:
                sr = r.read(100)[0]
            lr_scores = [min(99.0, max(psnr_y(f, p) for p in lr_read)) for f in read]  # 99: identical
            each = [[psnr_y(f, p, crop_border=4) for p in hr] for f in sr]
            sr_scores = [max(s) for s in each]
            result[label] = {"frames": len(sr), "pictures": len({int(np.argmax(s)) for s in each}),
                             "reader_psnr_y": {"mean": round(float(np.mean(lr_scores)), 2),
                                               "min": round(min(lr_scores), 2)},
                             "output_psnr_y": {"mean": round(float(np.mean(sr_scores)), 2),
                                               "min": round(min(sr_scores), 2)},
                             "output_per_frame": [round(x, 2) for x in sr_scores]}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


def progressive(path: Path, pictures: list, codec: str, options: dict[str, str]) -> None:
    """``pictures`` as a progressive 4:2:0 stream at 24 fps."""
    import av

    with av.open(str(path), "w") as dst:
        v = dst.add_stream(codec, rate=24, options=options)
        v.width, v.height, v.pix_fmt = pictures[0].width, pictures[0].height, "yuv420p"
        for i, f in enumerate(pictures):
            frame = f.reformat(format="yuv420p")
            frame.pts = i
            dst.mux(v.encode(frame))
        dst.mux(v.encode(None))


if __name__ == "__main__":
    main()
