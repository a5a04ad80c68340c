"""The boot rehearsal: the program's real user data booted by cloud-init and systemd in a container (README,
"Boot rehearsal")."""
