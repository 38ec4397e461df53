"""What every layer shares: errors and exit codes (errors), secrets kept out of every output
(redaction), SIGINT/SIGTERM as a clean stop (signals), the names of run figures and trial attributes
(names), the one order that ranks epochs, trials and configurations (ranking), and TensorFlow
imported without its start-up lines (startup). Imports nothing of pipeline's other layers.
"""
