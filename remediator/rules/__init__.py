"""rules: ``rules.yaml`` from schema to plans.

``schema`` (Policy, RuleSpec, RulesFile), ``loading`` (errors and cross-checks at their
lines, with ``checks`` and ``documents``), ``rule`` (Rule, Plan, render; with ``matchers``
and ``templates``), ``ruleset`` (RuleSet, load_rules), ``holder`` and ``watcher`` (reloads).
"""
