"""Storage shared by the export (pipelines) and replay: the object store and the landing-zone line writer."""
