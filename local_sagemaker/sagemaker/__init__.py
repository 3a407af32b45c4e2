"""The SageMaker API: protocol (:mod:`.responses`), backend (:mod:`.backend`) and one mixin
module per resource family (training, hosting, transform, tuning, rules)."""
