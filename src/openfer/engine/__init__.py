"""Training engine on Lightning: recipes, DataModules, LightningModules, checkpoints.

Needs the ``[train]`` extra (``pip install 'openfer[train]'``).
"""
