"""Import / Export: upload agent logs, preview, import; download exports."""

import hashlib

import pandas as pd
import streamlit as st

from memp_core.errors import MempError
from memp_core.importers import FORMATS
from memp_core.importers.export import WHATS
from memp_core.outcomes import outcome_of
from memp_core.uploads import Preview, Upload, export_zip, import_uploads, preview_uploads
from ui.common import changed, errors_shown, page
from ui.picker import url_choice
from ui.safe import md

FORMAT_HELP = (
    "auto: detect from the content · alfworld: ALFWorld transcripts (`> action` lines) · "
    "react: ReAct logs (Thought/Action/Observation) · chat: OpenAI-style message lists · "
    "reflexion: a folder of env_results_trial_N.json (upload all trial files together) · "
    "jsonl: a Memp Studio export"
)

ctx = page(
    "Import / Export",
    ":material/swap_vert:",
    "Bring in agent logs and take memory out. An import lands whole or not at all; "
    "trajectories already in the database are skipped.",
)
store = ctx.store

st.subheader("Import")
c1, c2 = st.columns([1, 2])
# auto reads the content and picks the format: a file need not be named or labelled right
fmt = url_choice(c1, "Format", FORMATS, key="io_format", param="format", default="auto",
                 help=FORMAT_HELP)  # fmt: skip
skip_bad = c1.checkbox(
    "Skip unreadable records", key="io_skip_bad",
    help="Import the good records and list the bad ones, instead of refusing the whole file.",
)  # fmt: skip
files = c2.file_uploader(
    "Agent log file(s)", accept_multiple_files=True, key="io_upload",
    help="Several files are read as one folder (e.g. all the trial files of a Reflexion run).",
)  # fmt: skip
uploads = [Upload(f.name, f.getvalue()) for f in files or []]
fingerprint = hashlib.sha256(
    repr((fmt, [(u.name, hashlib.sha256(u.data).hexdigest()) for u in uploads])).encode()
).hexdigest()


def show_preview(p: Preview) -> None:
    m = st.columns(6)
    m[0].metric("Trajectories", f"{p.trajectories:,}", border=True)
    m[1].metric("Succeeded", f"{p.succeeded:,}", border=True)
    m[2].metric("Unknown outcome", f"{p.unknown:,}", border=True)
    m[3].metric("Steps", f"{p.steps:,}", border=True)
    m[4].metric("Runs", p.runs, border=True)
    m[5].metric("Procedures", p.procedures, border=True)
    if p.formats:
        st.caption("Detected: " + ", ".join(f"{md(k)} → {md(v)}" for k, v in p.formats.items()))
    for label, items in (("Unreadable records", p.bad), ("Warnings", p.warnings)):
        if items:
            with st.expander(f"{label} ({len(items)})", expanded=label == "Unreadable records"):
                st.code("\n".join(items), language=None, wrap_lines=True)
    if p.sample:
        st.caption(f"The first {len(p.sample)} trajectories")
        rows = [{**vars(r), "success": outcome_of(r.success)} for r in p.sample]
        st.dataframe(
            pd.DataFrame(rows).rename(columns={"success": "outcome"}), hide_index=True,
            width="stretch",
        )  # fmt: skip


if uploads:
    b1, b2, _ = st.columns([1, 1, 4])
    if b1.button("Preview", key="io_preview"):
        try:
            st.session_state["io_preview_result"] = (fingerprint, preview_uploads(uploads, fmt))
        except MempError as exc:
            st.session_state.pop("io_preview_result", None)
            st.error(f"This file cannot be imported as {fmt}: {md(exc)}")
    do_import = b2.button(
        "Import", type="primary", key="io_import", disabled=not ctx.person.can_review
    )
    shown = st.session_state.get("io_preview_result")
    if shown and shown[0] == fingerprint:
        st.caption("Preview: nothing has been written yet.")
        show_preview(shown[1])
    if do_import:
        try:
            with st.spinner("Importing…"):
                report = import_uploads(store, uploads, fmt, actor=ctx.actor(),
                                        skip_bad=skip_bad)  # fmt: skip
        except MempError as exc:
            st.error(f"Nothing was imported: {md(exc)}")
        else:
            changed()
            st.session_state.pop("io_preview_result", None)
            unknown = report.trajectories - report.succeeded - report.failed
            st.success(
                f"Imported {report.trajectories:,} trajectories ({report.succeeded:,} "
                f"succeeded, {report.failed:,} failed, {unknown:,} unknown), {report.runs} "
                f"runs, {report.procedures} procedures; {report.duplicates_skipped:,} "
                "duplicates skipped."
            )
            if unknown:
                st.info(
                    f"{unknown:,} trajectories record no outcome: they stay unknown (in no "
                    "success rate, built from by no policy) until a reviewer sets their "
                    "outcome on the Trajectories page, or you import them with "
                    "`memp import FILE --label success` when you know they succeeded."
                )
            if report.bad or report.warnings:
                st.code("\n".join(report.bad + report.warnings)[:20_000], language=None)
if not ctx.person.can_review:
    st.caption(f"Signed in as a {ctx.person.role}: importing needs reviewer or admin.")

st.divider()
st.subheader("Export")
st.caption(
    "JSONL that `memp import --format jsonl` reads back (runs, trajectories with steps, "
    "procedures with their whole lineage and audit trail) plus the learning curves as CSV."
)
e1, e2, _ = st.columns([1, 1, 4], vertical_alignment="bottom")
what = url_choice(e1, "What", WHATS, key="io_what", param="export", default="all")
if e2.button("Prepare export", key="io_export"):
    with st.spinner("Exporting…"), errors_shown():
        st.session_state["io_export_zip"] = (what, export_zip(store, what, actor=ctx.actor()))
ready = st.session_state.get("io_export_zip")
if ready:
    st.download_button(
        f"Download memp-export-{ready[0]}.zip ({len(ready[1]) / 1024:,.0f} KB)", ready[1],
        file_name=f"memp-export-{ready[0]}.zip", mime="application/zip", key="io_download",
    )  # fmt: skip
