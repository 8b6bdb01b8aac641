"""The model side: ``TuneModule`` (module.py), loading backbones (backbone.py), parameter groups,
optimizer and schedules (optim.py), FSDP2 sharding (sharding.py) and the strategy trainer=fsdp uses
(model_parallel.py). What trains is in tunelab/tuning/."""
