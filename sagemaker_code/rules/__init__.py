"""The rule engine: SageMaker Debugger's built-in rules, implemented from AWS's documentation.

``rules.runner.evaluate`` runs one rule; ``evaluate_rules.py`` is its command line.
Tensor rules (over smdebug tensors) live in ``rules.tensor_rules``; profiler rules (over
system metrics) in ``rules.profiler_rules``; ProfilerReport's HTML in ``rules.report``.
"""
