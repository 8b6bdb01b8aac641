"""The model side: ``TuneModule`` (module.py), loading backbones (backbone.py), parameter groups and
schedules (optim.py), FSDP2 sharding (sharding.py). What trains is in tunelab/tuning/."""
