"""fastText document classifiers (quality, toxicity): features, training, scoring, metrics.

Pure functions and one model class; no pipeline imports. `pipeline/stages/quality*.py` reads
inputs, writes model directories and applies the keep rules.
"""
