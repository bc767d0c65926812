"""The typed finding every checker returns: its message made from its values when shown, in the reader's
language; its JSON the same shape as before, with the values added."""

from __future__ import annotations

from archiver.i18n import CHINESE, ENGLISH, N_, speaking
from archiver.problems import MADE, Finding, Kind


def test_a_finding_is_shown_from_its_values_in_the_readers_language():
    found = Finding(Kind.MISMATCH, "archive/2022/11/03/x.MP4",
                    N_("recording #{id}: sha256 is {found}, the catalog says {expected}"), {"id": 7}, "aa", "bb")
    with speaking(ENGLISH):
        assert found.to_json() == {"kind": "mismatch", "path": "archive/2022/11/03/x.MP4",
                                   "detail": "recording #7: sha256 is bb, the catalog says aa",
                                   "expected": "aa", "found": "bb"}
    with speaking(CHINESE):
        assert found.message() == "记录文件 #7：sha256 为 bb，目录库中为 aa"


def test_custody_findings_lead_with_their_sequence_number_and_the_centres_name_their_station():
    chain = Finding(Kind.CUSTODY_SIGNATURE, "custody.jsonl", N_("signature does not verify with the station key"),
                    seq=12)
    with speaking(ENGLISH):
        assert chain.to_json() == {"kind": "custody_signature", "path": "custody.jsonl",
                                   "detail": "seq 12: signature does not verify with the station key"}
        gap = Finding(Kind.GAP, None, N_("expected sequence {expected}"), {}, 4, 6, station="s1", seq=6)
        assert gap.to_station_json() == {"station": "s1", "seq": 6, "kind": "gap", "path": None,
                                         "detail": "expected sequence 4", "expected": 4, "found": 6}
        assert Finding(Kind.BACKUP_TARGET, "/mnt/b", MADE, {"detail": "not mounted"}).message() == "not mounted"


def test_every_kind_a_checker_can_report_is_in_the_one_vocabulary_and_shown_in_chinese():
    from archiver.i18n.words import PROBLEMS

    assert {str(k) for k in Kind} <= set(PROBLEMS)
