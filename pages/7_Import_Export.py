"""Import / Export: upload agent logs, preview, import; download exports."""

import streamlit as st

from ui.common import errors_shown, optional_module, page

ctx = page(
    "Import / Export",
    ":material/swap_vert:",
    "Bring in agent logs (ALFWorld transcripts, Reflexion runs, chat logs, ...) and take "
    "memory out. An import lands whole or not at all.",
)
importers = optional_module("memp_core.importers")
ready = importers is not None and hasattr(importers, "preview_file")

st.subheader("Import")
if not ready:
    st.info("Importing from the page is not available yet (memp_core.importers is not ready). "
            "Meanwhile: `memp import PATH --format FORMAT`.")  # fmt: skip
uploaded = st.file_uploader("Agent log file", key="io_upload", disabled=not ready)

st.subheader("Export")
if not ready:
    st.info("Exports are not available yet.")
with errors_shown():
    pass
