"""Regenerate the pictures of the README and the model card, all drawn by attnviz.

    python sample_models/recipe/pictures.py

Writes sample_models/pictures/heatmap-<name>.png for each bundled model (word level; the
Korean→English model reads the Korean translation of the same sentence),
sample_models/pictures/translate-terminal.svg, the terminal table of `attnviz translate`, and
sample_models/pictures/explain-terminal.svg, the panels of `attnviz explain` (both recorded by
rich and saved as SVG). The HTML view's screenshot needs a browser:
`python bench/bench_html.py --screenshot sample_models/pictures/html-view.png`.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PICTURES = HERE.parent / "pictures"
SENTENCE = "the young prince did not read the letter in the library yesterday ."
KOREAN_SENTENCE = "어린 왕자가 어제 도서관에서 편지를 읽지 않았다 ."  # enko-additive's translation
TERMINAL_SENTENCE = "my sister drank the cold water in the kitchen ."
EXPLAIN_SENTENCE = "the boy ate an apple ."


def main() -> int:
    PICTURES.mkdir(exist_ok=True)
    for model, text in (
        ("enko-additive", SENTENCE),
        ("enko-dot", SENTENCE),
        ("enko-general", SENTENCE),
        ("koen-additive", KOREAN_SENTENCE),
    ):
        out = PICTURES / f"heatmap-{model.removeprefix('enko-')}.png"
        command = ["attnviz", "heatmap", text, "--model", model, "--words"]
        command += ["--device", "cpu", "--out", str(out), "--title", model, "--force"]
        print("$", " ".join(command), flush=True)
        subprocess.run(command, check=True)

    from rich.console import Console
    from rich.terminal_theme import MONOKAI

    from attnviz import load_model
    from attnviz.render.terminal import render_text

    translator = load_model("enko-additive", device="cpu")
    console = Console(
        record=True, file=io.StringIO(), width=100, force_terminal=True, color_system="truecolor"
    )
    console.print(f'$ attnviz translate "{TERMINAL_SENTENCE}" --words --values', style="bold")
    render_text(translator.translate(TERMINAL_SENTENCE, words=True), console, values=True)
    console.save_svg(str(PICTURES / "translate-terminal.svg"), title="attnviz", theme=MONOKAI)
    print(f"wrote {PICTURES / 'translate-terminal.svg'}")

    from attnviz.explain import explain_step
    from attnviz.render.explain import explanation_view

    console = Console(
        record=True, file=io.StringIO(), width=118, force_terminal=True, color_system="truecolor"
    )
    console.print(f'$ attnviz explain "{EXPLAIN_SENTENCE}" --step 1 --dims 4', style="bold")
    console.print(explanation_view(explain_step(translator, EXPLAIN_SENTENCE, 1), dims=4))
    console.save_svg(str(PICTURES / "explain-terminal.svg"), title="attnviz", theme=MONOKAI)
    print(f"wrote {PICTURES / 'explain-terminal.svg'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
