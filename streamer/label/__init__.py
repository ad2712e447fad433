"""Labelling edges: separate processes that show label requests to people and write their labels.

``streamer label-studio`` bridges to a Label Studio project; ``streamer annotate --web`` serves a
small labelling page. Both read ``label-requests`` and write ``labels`` with the service's
Settings, and never touch Redis or the model: the labels topic is the only way in.
"""
