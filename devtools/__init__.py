"""Developer tooling: environment set-up and the local stack (`make up` / `make down`)."""
