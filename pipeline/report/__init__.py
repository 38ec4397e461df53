"""The report layer: what a person reads. The sweep's summary, tables and figures (sweep_report),
the live charts process (charts), the plateau diagnosis (diagnosis) and the reading of a
learning-rate range test's curve (lr_curve). Imports pipeline.core and pipeline.config: no
TensorFlow or Keras, so the chart process draws without them.
"""
