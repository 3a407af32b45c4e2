"""The rule benchmark's container side: every tensor rule over every job of the corpus.

bench_rules.py writes a manifest (`parameter_sets`: set name -> rule -> RuleParameters;
`debug_outputs`: job -> the folder holding its kept debug output) per share of the corpus and
runs this with the container environment's Python, which has smdebug, once per manifest. Each
rule is evaluated by the project's rule engine (`rules.tensor_rules.evaluate_tensor_rule`, what
evaluate_rules.py runs in a rule job), all of a share in one process so smdebug and torch are
imported once. The outcomes go to
`<manifest>.outcomes.json`, keyed `job|set|rule`.

    .venvs/container/bin/python benchmarks/rule_faults/evaluate_corpus.py MANIFEST
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sagemaker_code"))

from rules.tensor_rules import TENSOR_RULES, evaluate_tensor_rule


def main(manifest: Path) -> None:
    work = json.loads(manifest.read_text())
    outcomes = {}
    for (job, debug_output), (set_name, parameters), rule in itertools.product(
        work["debug_outputs"].items(), work["parameter_sets"].items(), TENSOR_RULES
    ):
        outcome = evaluate_tensor_rule(rule, parameters[rule], Path(debug_output))
        outcomes[f"{job}|{set_name}|{rule}"] = {
            "status": outcome.status,
            "details": outcome.details,
        }
    manifest.with_suffix(".outcomes.json").write_text(json.dumps(outcomes))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
