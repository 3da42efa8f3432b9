"""`python -m visualizer generate ...`: continue a prompt with the model and write the generation view.

Writes into exactly DIR (built in a temporary folder beside it, renamed into place): index.html (the
generation view), generation.json, output.txt (prompt + continuation), snapshots/*.png (attention
every --snapshot-every steps) and prompt/ (the prompt's full report). Settings: flags, then the
environment and .env (MODEL, NANOGPT_META_PATH, PROBE_SENTENCE as the default prompt, OUT, DEVICE),
then defaults; the error contract is the plain command's (one `error:` line, exit 2).

What this module does not do: generate (generate.py), sample (sampling.py) or lay out HTML
(generation_site.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import visualizer.cli as cli

HELP = "continue a prompt token by token and write the generation view (see generate --help)"
MARKER = "generation.json"  # a folder holding this is a generation we may replace


def parser() -> cli.Parser:
    p = cli.Parser(
        prog="python -m visualizer generate",
        description="Continue a prompt with the model, recording every step (candidates before and after the "
        "sampling controls, attention rows, logit lens), and write a static page to watch it. Defaults leave "
        "the model's distribution untouched; --temperature 0 alone is greedy decoding.",
    )
    p.add_argument("--checkpoint", metavar="PATH", help="nanoGPT ckpt.pt (.env: MODEL); default: the embedded demo")
    p.add_argument("--meta", metavar="PATH", help="nanoGPT meta.pkl (.env: NANOGPT_META_PATH); default: beside the checkpoint")
    p.add_argument("--prompt", metavar="TEXT", help="the text to continue (.env: PROBE_SENTENCE; default: a Shakespeare line)")
    p.add_argument("--prompt-file", metavar="PATH", help="read the prompt from a UTF-8 file (keeps newlines)")
    p.add_argument("--max-new-tokens", type=int, default=100, metavar="N", help="tokens to generate at most (default 100)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T", help="divide the logits by T; 0 = greedy argmax (default 1)")
    p.add_argument("--top-k", type=int, default=None, metavar="K", help="sample only from the K most likely tokens (default off)")
    p.add_argument("--top-p", type=float, default=None, metavar="P", help="sample only from the most likely tokens whose mass reaches P (default off)")
    p.add_argument("--repetition-penalty", type=float, default=1.0, metavar="R",
                   help="CTRL penalty for tokens already in the sequence: positive logits / R, negative * R (default 1: off)")
    p.add_argument("--no-repeat-ngram-size", type=int, default=0, metavar="N",
                   help="never repeat an n-gram of this size (default 0: off)")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="stop once the continuation contains TEXT (repeatable; the stop text is kept)")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="seed of the sampler (default 1337: runs are reproducible)")
    p.add_argument("--snapshot-every", type=int, default=25, metavar="N", help="attention PNG every N steps (default 25; 0 = none)")
    p.add_argument("--candidates", type=int, default=10, metavar="K", help="candidates recorded per step (default 10)")
    p.add_argument("--out", metavar="DIR", help="write into exactly DIR (.env: OUT); default: visualizations/<model>/generate-<prompt-slug>/")
    cli.add_common_options(p)
    return p


def read_prompt(args, env: dict) -> str:
    from visualizer.config import DEFAULT_PROBE, read_probe_file

    if args.prompt is not None and args.prompt_file is not None:
        from visualizer.errors import VisualizerError

        raise VisualizerError("give --prompt or --prompt-file, not both")
    if args.prompt_file is not None:
        return read_probe_file(Path(args.prompt_file))
    return args.prompt if args.prompt is not None else env.get("PROBE_SENTENCE", DEFAULT_PROBE)


def settings_from(args) -> "sampling.Settings":
    import visualizer.generation.sampling as sampling
    from visualizer.errors import VisualizerError

    for flag, value, least in (("--max-new-tokens", args.max_new_tokens, 1), ("--snapshot-every", args.snapshot_every, 0),
                               ("--candidates", args.candidates, 1)):
        if value < least:
            raise VisualizerError(f"{flag} {value}: must be at least {least}")
    return sampling.Settings(
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size, stop=tuple(args.stop),
        seed=sampling.DEFAULT_SEED if args.seed is None else args.seed,
    ).check()


def run(args) -> int:
    import visualizer.site.common as site
    from visualizer.config import read_env
    from visualizer.errors import VisualizerError
    from visualizer.generation.decode import generate
    from visualizer.figures.generation import write_snapshots
    from visualizer.generation.record import build_record
    from visualizer.site.generation import render_generation
    from visualizer.model.registry import DEMO_CHECKPOINT, DEMO_META, load_model
    from visualizer.pipeline import VISUALIZATIONS, prepare_probe, probe_slug, warn, write_report
    from visualizer.artefacts.trace import dumps

    def say(message: str) -> None:
        if not args.quiet:
            print(message, flush=True)

    env = read_env(Path(args.env_file) if args.env_file else None)
    prompt = read_prompt(args, env)
    if prompt == "" or prompt.isspace():
        raise VisualizerError("the prompt is empty")
    settings = settings_from(args)
    checkpoint = args.checkpoint or env.get("MODEL")
    meta = args.meta or (None if args.checkpoint else env.get("NANOGPT_META_PATH"))
    if checkpoint is None:
        checkpoint, meta = DEMO_CHECKPOINT, meta or DEMO_META
    loaded = load_model(Path(checkpoint), Path(meta) if meta else None, args.device or env.get("DEVICE", "cpu"))
    probe = prepare_probe(loaded, prompt)
    out = args.out or env.get("OUT")
    out = Path(out) if out else VISUALIZATIONS / loaded.name / f"generate-{probe_slug(prompt)}"
    site.check_target(out, MARKER)  # refuse a foreign folder before spending time generating
    for message in probe.warnings:
        warn(message)
    say(f"loaded {loaded.family} model '{loaded.name}'; generating up to {args.max_new_tokens} tokens "
        f"after {len(probe.ids)} prompt tokens")
    progress = None
    if not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(total=args.max_new_tokens, unit="tok", file=sys.stderr, leave=False)
    try:
        gen = generate(loaded, probe.ids, args.max_new_tokens, settings,
                       on_step=(lambda step: progress.update(1)) if progress else None)
    finally:
        if progress is not None:
            progress.close()
    record = build_record(loaded, probe, gen, settings, args.max_new_tokens, args.candidates)
    with site.atomic_folder(out, MARKER) as tmp:
        prompt_trace = write_report(loaded, probe, tmp / "prompt", args.candidates)
        (tmp / "generation.json").write_text(dumps(record), encoding="utf-8")
        (tmp / "output.txt").write_text(record["output"], encoding="utf-8")
        render_generation(tmp, record, write_snapshots(tmp, record, args.snapshot_every))
    failed = False
    for name, check in {**record["verification"], **prompt_trace["verification"]}.items():
        if not check["passed"]:
            failed = True
            print(f"VERIFICATION FAILED: {name}: max abs error {check['max_abs_error']} > {check['tolerance']}",
                  file=sys.stderr)
    if gen.slides:
        bos = getattr(loaded.tokenizer, "bos_id", None)
        dropped = " (the prompt's first token, BOS, is cropped away with it)" if bos is not None and probe.ids[0] == bos else ""
        say(f"the context reached block_size {loaded.dims.n_ctx} at step {gen.slides[0]}: cropped to the "
            f"last {loaded.dims.n_ctx} tokens from then on (as nanoGPT){dropped}, cache rebuilt at {len(gen.slides)} steps")
    stop = {"max_new_tokens": "max tokens", "stop_string": f"stop string {gen.stop_string!r}",
            "no_allowed_token": "every token banned"}[gen.stop_reason]
    say(f"{len(gen.steps)} tokens generated (stopped: {stop}); verification {'FAILED' if failed else 'passed'}")
    say(f"generation: {out / 'index.html'}")
    return 3 if failed else 0


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return cli.run_guarded(lambda: run(args), args.debug)


cli.SUBCOMMANDS["generate"] = (HELP, main)
