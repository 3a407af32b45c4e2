"""The rule benchmark's container side: every tensor rule over every job of the corpus.

bench_rules.py writes a manifest (`parameter_sets`: set name -> rule -> RuleParameters;
`debug_outputs`: job -> the folder holding its kept debug output) per share of the corpus and
runs this with the container environment's Python, which has smdebug, once per manifest. Each
rule is evaluated by the project's rule engine (`rules.tensor_rules.evaluate_tensor_rule`, what
evaluate_rules.py runs in a rule job), all of a share in one process so smdebug and torch are
imported once. A rule whose parameters are the same in several sets (those the local profile
leaves at AWS's defaults) is evaluated once per job and its outcome given to each of them: the
verdict is a function of the tensors and the parameters. The outcomes go to
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


def sets_by_parameters(parameter_sets: dict[str, dict], rule: str) -> dict[str, list[str]]:
    """The rule's distinct parameters (as canonical JSON) -> the sets that give it them."""
    distinct: dict[str, list[str]] = {}
    for set_name, parameters in parameter_sets.items():
        distinct.setdefault(json.dumps(parameters[rule], sort_keys=True), []).append(set_name)
    return distinct


def main(manifest: Path) -> None:
    work = json.loads(manifest.read_text())
    outcomes = {}
    for (job, debug_output), rule in itertools.product(work["debug_outputs"].items(), TENSOR_RULES):
        for parameters, set_names in sets_by_parameters(work["parameter_sets"], rule).items():
            outcome = evaluate_tensor_rule(rule, json.loads(parameters), Path(debug_output))
            for set_name in set_names:
                outcomes[f"{job}|{set_name}|{rule}"] = {
                    "status": outcome.status,
                    "details": outcome.details,
                }
    manifest.with_suffix(".outcomes.json").write_text(json.dumps(outcomes))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
