"""scikit-learn's own MLP test module, run in place against nnxp's estimators."""
