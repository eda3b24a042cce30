"""Reports: what each kind contains (`builders`), how it is written (`formats`) and where it is
kept (`storage`)."""
