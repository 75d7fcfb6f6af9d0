"""The decision pipeline's stages, one module each. Every module here is imported by
`agent.engine.pipeline.registered_stages()`; a class decorated with `@register_stage` joins the pipeline at its
`order`. Adding a stage is adding a module (see docs/ARCHITECTURE.md, "Adding a stage")."""

__all__: list[str] = []
