"""No models. The module exists so Django sends `post_migrate` to the `config` app
(`config/apps.py` creates the database cache table there)."""
