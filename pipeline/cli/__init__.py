"""The console commands: rnn-sweep, rnn-train, rnn-lr-find, rnn-predict, rnn-ui, rnn-dashboard.

Each module is one thin entry point built by `entry.command`: Hydra composes conf/, the config is
checked, and only then is the layer that does the work imported (TensorFlow, MLflow and matplotlib
load in seconds; `--help`, `--cfg job` and a bad value answer without them). May import every layer.
"""
