"""Hub-side code of the classroom.

- `authenticator`: only rostered people log in, against bcrypt hashes.
- `roster`: turns the operator's roster into the hashed file the hub reads.
- `spawner`: DockerSpawner with per-group limits and CPU/GPU profiles.
- `gpu`: which GPU a new server gets.
- `prestart`: starts a class's servers before the class arrives.
"""
