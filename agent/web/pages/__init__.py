"""The dashboard's pages, one module per area a person names: tonight, library, lights, reports."""
