"""Streamlit helpers shared by app.py and pages/ (the core, memp_core, never imports these)."""
