"""The night: state table, runner, dispatch, one module per state, services to the library, report."""
