"""The generation view: `generation.json`'s record -> `index.html` (templates/generation.html) with
its data inline and `assets/generation.js` for the interactive parts.

Rendering needs only the record (the folder's files), never the model. The browser gets a compact
copy of the record: candidates as [id, probability] pairs with one id -> readable-token table, and
attention rows as uint8 scaled to each row's maximum (value = byte / 255 * row max), base64; the
page says so. Probabilities shown as numbers come from the record unchanged.

What this module does not do: generate (generate.py) or draw PNGs (generation_figures.py).
"""

from __future__ import annotations

import markupsafe

from visualizer import __version__
import visualizer.figures.palette as palette
import visualizer.site.common as site
import visualizer.artefacts.attention_codec as codec

LEGEND_POINTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # probabilities shown in the colour legend

CONTROL_NAMES = {
    "repetition_penalty": "repetition penalty",
    "no_repeat_ngram": "no-repeat n-gram block",
    "temperature": "temperature",
    "top_k": "top-k",
    "top_p": "top-p",
}


def prob_colour(p: float) -> tuple[str, str]:
    """(background, text colour) for a probability in [0, 1]: the palette's sequential scale,
    as assets/generation.js colours it."""
    background = palette.sequential(float(p))
    return palette.hex_of(background), palette.hex_of(palette.ink_for(background))


def browser_data(record: dict) -> dict:
    """The compact inline JSON the page's script reads."""
    vocab: dict[str, str] = {}

    def name(token_id: int, readable: str) -> int:
        vocab[str(token_id)] = readable
        return token_id

    def pairs(candidates: list[dict]) -> list[list]:
        return [[name(c["id"], c["readable"]), c["prob"]] for c in candidates]

    for token_id, readable in zip(record["prompt_ids"], record["prompt_tokens_readable"]):
        name(token_id, readable)
    steps = []
    for s in record["steps"]:
        name(s["id"], s["readable"])
        att, scale = codec.encode_row_scaled(codec.decode_float32(s["attention"]))
        steps.append(
            {
                "id": s["id"],
                "p": s["prob"],
                "ps": s["sampled_prob"],
                "logit": s["logit"],
                "rank": s["rank"],
                "H": s["entropy_bits"],
                "Hs": s["sampled_entropy_bits"],
                "cs": s["context_start"],
                "T": s["context_length"],
                "slid": s["slid"],
                "before": pairs(s["candidates_before"]),
                "after": pairs(s["candidates_after"]),
                "controls": [[CONTROL_NAMES.get(c["control"], c["control"]), pairs(c["candidates"])] for c in s["controls"]],
                "lens": [[pairs(l["top"]), l["chosen_prob"], l["chosen_rank"]] for l in s["logit_lens"]],
                "att": att,
                "scale": scale,
            }
        )
    return {
        "n_layer": record["dims"]["n_layer"],
        "n_head": record["dims"]["n_head"],
        "prompt": list(record["prompt_ids"]),
        "vocab": vocab,
        "greedy": record["settings"]["temperature"] == 0,
        "steps": steps,
    }


def page_model(record: dict, snapshots: list[dict]) -> dict:
    prompt_tokens = [{"readable": r, "id": i} for r, i in zip(record["prompt_tokens_readable"], record["prompt_ids"])]
    generated = []
    for s in record["steps"]:
        background, colour = prob_colour(s["prob"])
        generated.append({"readable": s["readable"], "id": s["id"], "prob": s["prob"], "step": s["step"],
                          "style": f"background:{background};color:{colour}"})
    legend = [{"label": f"{p:.2f}", "colour": prob_colour(p)[0], "text": prob_colour(p)[1]} for p in LEGEND_POINTS]
    settings = record["settings"]
    return {
        "record": record,
        "settings": settings,
        "prompt_tokens": prompt_tokens,
        "generated": generated,
        "legend": legend,
        "snapshots": snapshots,
        "data_json": markupsafe.Markup(site.json_for_script(browser_data(record))),
    }


def render_generation(folder, record: dict, snapshots: list[dict]) -> None:
    """Write folder/index.html (the generation view) and its assets."""
    html = site.environment().get_template("generation.html").render(**page_model(record, snapshots), version=__version__)
    (folder / "index.html").write_text(html, encoding="utf-8")
    site.copy_assets(folder)
    (folder / ".nojekyll").write_text("", encoding="utf-8")
