"""Memp Studio dashboard: overview page (Streamlit entry point; pages/ are auto-discovered)."""

import streamlit as st

from memp_core.config import get_settings
from memp_core.errors import MempError
from memp_core.store import Store

st.set_page_config(page_title="Memp Studio", layout="wide")


@st.cache_resource
def get_store(url: str) -> Store:
    return Store(url)


st.title("Memp Studio")
st.caption("Procedural memory for LLM agents: build, retrieve, update, review.")
try:
    settings = get_settings()
    counts = get_store(settings.resolved_database_url()).counts()
except MempError as exc:
    st.error(str(exc))
    st.stop()

cols = st.columns(4)
cols[0].metric("Trajectories", counts.trajectories, border=True)
rate = counts.success_rate
cols[1].metric("Success rate", f"{rate:.0%}" if rate is not None else "–", border=True)
cols[2].metric("Procedures", counts.procedures, border=True)
cols[3].metric("Runs", counts.runs, border=True)
