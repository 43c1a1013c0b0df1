"""Response examples for the OpenAPI document: what the service answered on a run (the
site's today 2026-03-10), trimmed to a few items each, with fixed ids and times. Redocly checks
each against its schema (rule no-invalid-media-type-examples), so one that drifts from a schema
fails the lint test. Refreshed by `python -m tests.refresh_examples`."""

# ruff: noqa: E501 (feed links are longer than a line)

from __future__ import annotations

from typing import Any

ENROLLED: dict[str, Any] = {
    "id": "3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c",
    "subject_code": "ZS-001",
    "cryoablation_date": "2026-03-02",
    "childbearing_potential": False,
    "lookbacks": {
        "live_vaccine": None,
        "major_surgery": None,
        "systemic_antimicrobials_end": None,
        "radical_radiotherapy": None,
        "myocardial_infarction": None,
        "other_trial_last_dose": None,
        "prior_malignancy": None,
        "other_trial_half_life_days": None
    },
    "screening_date": None,
    "protocol": {
        "id": "NCT07064876",
        "version": "2026-11-25.2"
    },
    "version": 1,
    "enrolled_at": "2026-03-10T02:15:00+00:00",
    "enrolled_by": "edc",
    "updated_at": "2026-03-10T02:15:00+00:00",
    "links": {
        "self": "/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c",
        "schedule": "/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c/schedule",
        "events": "/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c/events"
    },
    "feed": {
        "https": "https://schedule.example.org/feeds/0f8e2d4c6b1a39578e2d4c6b1a395780.Xq3v9LrT0pWz7Yk2NcB5hJ8sDf1Gm4Qa6Ue0Ri9Ot3w.ics",
        "webcal": "webcal://schedule.example.org/feeds/0f8e2d4c6b1a39578e2d4c6b1a395780.Xq3v9LrT0pWz7Yk2NcB5hJ8sDf1Gm4Qa6Ue0Ri9Ot3w.ics"
    }
}

RECORDED: dict[str, Any] = {
    "event": {
        "id": "9b1d3c2a-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
        "seq": 1,
        "type": "recovery_confirmed",
        "date": "2026-03-09",
        "cycle": None,
        "reason": None,
        "description": None,
        "event_id": None,
        "reason_code": None,
        "version": None,
        "changes": [],
        "visit_id": None,
        "purpose": None,
        "note": None,
        "recorded_by": "edc",
        "recorded_at": "2026-03-10T02:15:00+00:00",
        "voided_by": None
    },
    "schedule": {
        "protocol": {
            "id": "NCT07064876",
            "version": "2026-11-25.2"
        },
        "state": "scheduled",
        "first_dose_date": "2026-03-09",
        "visits": [
            {
                "id": "BASELINE-IMAGING",
                "kind": "baseline_imaging",
                "title": "Baseline imaging (measurable target lesion, mRECIST (2019))",
                "cycle": None,
                "date": "2026-02-24",
                "window": {
                    "earliest": "2026-02-09",
                    "latest": "2026-03-01"
                },
                "status": "overdue",
                "rule": {
                    "id": "baseline-imaging",
                    "source": "record",
                    "text": "At least one measurable target lesion within 4 weeks before the first dose, evaluated by the investigator according to mRECIST (2019) criteria",
                    "anchor": "cryoablation 2026-03-02 - 7 days, within 28 days before C1D1 2026-03-09",
                    "shifted_from": "2026-02-23",
                    "shift_reason": "2026-02-23 is a Spring Festival holiday"
                },
                "actual_date": None,
                "timing": None
            },
            {
                "id": "CRYO",
                "kind": "cryoablation",
                "title": "CT-guided cryoablation",
                "cycle": None,
                "date": "2026-03-02",
                "window": {
                    "earliest": "2026-03-02",
                    "latest": "2026-03-02"
                },
                "status": "overdue",
                "rule": {
                    "id": "cryoablation",
                    "source": "record",
                    "text": "Cryoablation will be performed first to locally ablate the tumor. Procedure done once (per-protocol) prior to systemic therapy.",
                    "anchor": "cryoablation 2026-03-02",
                    "shifted_from": None,
                    "shift_reason": None
                },
                "actual_date": None,
                "timing": None
            },
            {
                "id": "C1D1",
                "kind": "infusion",
                "title": "Serplulimab 300 mg IV, cycle 1",
                "cycle": 1,
                "date": "2026-03-09",
                "window": {
                    "earliest": "2026-03-09",
                    "latest": "2026-03-12"
                },
                "status": "due",
                "rule": {
                    "id": "first-dose",
                    "source": "record",
                    "text": "Serplulimab starts once no major post-procedural complications are observed",
                    "anchor": "recovery confirmed 2026-03-09",
                    "shifted_from": None,
                    "shift_reason": None
                },
                "actual_date": None,
                "timing": None
            }
        ],
        "warnings": [
            {
                "code": "holiday-data-provisional",
                "message": "The holiday data has no official notice for 2027 (make-up working days are unknown), so these dates are provisional: IMG-6, IMG-7, SURV-2, SURV-3, SURV-4",
                "visit_id": None
            },
            {
                "code": "visit-overdue",
                "message": "BASELINE-IMAGING (Baseline imaging (measurable target lesion, mRECIST (2019))) is overdue: its window 2026-02-09 to 2026-03-01 closed and nothing is recorded by 2026-03-10 (rule baseline-imaging)",
                "visit_id": "BASELINE-IMAGING"
            },
            {
                "code": "visit-overdue",
                "message": "CRYO (CT-guided cryoablation) is overdue: its window 2026-03-02 to 2026-03-02 closed and nothing is recorded by 2026-03-10 (rule cryoablation)",
                "visit_id": "CRYO"
            },
            {
                "code": "visit-overdue",
                "message": "SCREEN-LABS (Screening labs (haematology, liver, renal, coagulation, urinalysis)) is overdue: its window 2026-02-23 to 2026-03-09 closed and nothing is recorded by 2026-03-10 (rule screening-labs)",
                "visit_id": "SCREEN-LABS"
            }
        ]
    }
}

CORRECTED: dict[str, Any] = {
    "id": "3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c",
    "subject_code": "ZS-001",
    "cryoablation_date": "2026-03-02",
    "childbearing_potential": True,
    "lookbacks": {
        "live_vaccine": None,
        "major_surgery": None,
        "systemic_antimicrobials_end": None,
        "radical_radiotherapy": None,
        "myocardial_infarction": None,
        "other_trial_last_dose": None,
        "prior_malignancy": None,
        "other_trial_half_life_days": None
    },
    "screening_date": None,
    "protocol": {
        "id": "NCT07064876",
        "version": "2026-11-25.2"
    },
    "version": 3,
    "enrolled_at": "2026-03-10T02:15:00+00:00",
    "enrolled_by": "edc",
    "updated_at": "2026-03-10T02:15:00+00:00",
    "links": {
        "self": "/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c",
        "schedule": "/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c/schedule",
        "events": "/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c/events"
    },
    "feed": {
        "https": "https://schedule.example.org/feeds/0f8e2d4c6b1a39578e2d4c6b1a395780.Xq3v9LrT0pWz7Yk2NcB5hJ8sDf1Gm4Qa6Ue0Ri9Ot3w.ics",
        "webcal": "webcal://schedule.example.org/feeds/0f8e2d4c6b1a39578e2d4c6b1a395780.Xq3v9LrT0pWz7Yk2NcB5hJ8sDf1Gm4Qa6Ue0Ri9Ot3w.ics"
    }
}

PAGE: dict[str, Any] = {
    "items": [
        {
            "id": "3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c",
            "subject_code": "ZS-001",
            "cryoablation_date": "2026-03-02",
            "childbearing_potential": True,
            "lookbacks": {
                "live_vaccine": None,
                "major_surgery": None,
                "systemic_antimicrobials_end": None,
                "radical_radiotherapy": None,
                "myocardial_infarction": None,
                "other_trial_last_dose": None,
                "prior_malignancy": None,
                "other_trial_half_life_days": None
            },
            "screening_date": None,
            "protocol": {
                "id": "NCT07064876",
                "version": "2026-11-25.2"
            },
            "version": 3,
            "enrolled_at": "2026-03-10T02:15:00+00:00",
            "enrolled_by": "edc",
            "updated_at": "2026-03-10T02:15:00+00:00",
            "links": {
                "self": "/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c",
                "schedule": "/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c/schedule",
                "events": "/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c/events"
            },
            "feed": {
                "https": "https://schedule.example.org/feeds/0f8e2d4c6b1a39578e2d4c6b1a395780.Xq3v9LrT0pWz7Yk2NcB5hJ8sDf1Gm4Qa6Ue0Ri9Ot3w.ics",
                "webcal": "webcal://schedule.example.org/feeds/0f8e2d4c6b1a39578e2d4c6b1a395780.Xq3v9LrT0pWz7Yk2NcB5hJ8sDf1Gm4Qa6Ue0Ri9Ot3w.ics"
            },
            "state": "scheduled",
            "next_visit": {
                "id": "BASELINE-IMAGING",
                "title": "Baseline imaging (measurable target lesion, mRECIST (2019))",
                "date": "2026-02-24",
                "window": {
                    "earliest": "2026-02-09",
                    "latest": "2026-03-01"
                },
                "status": "overdue"
            }
        }
    ],
    "next_cursor": None
}

PARTICIPANT: dict[str, Any] = {
    "id": "3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c",
    "subject_code": "ZS-001",
    "cryoablation_date": "2026-03-02",
    "childbearing_potential": True,
    "lookbacks": {
        "live_vaccine": None,
        "major_surgery": None,
        "systemic_antimicrobials_end": None,
        "radical_radiotherapy": None,
        "myocardial_infarction": None,
        "other_trial_last_dose": None,
        "prior_malignancy": None,
        "other_trial_half_life_days": None
    },
    "screening_date": None,
    "protocol": {
        "id": "NCT07064876",
        "version": "2026-11-25.2"
    },
    "version": 3,
    "enrolled_at": "2026-03-10T02:15:00+00:00",
    "enrolled_by": "edc",
    "updated_at": "2026-03-10T02:15:00+00:00",
    "links": {
        "self": "/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c",
        "schedule": "/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c/schedule",
        "events": "/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c/events"
    },
    "feed": {
        "https": "https://schedule.example.org/feeds/0f8e2d4c6b1a39578e2d4c6b1a395780.Xq3v9LrT0pWz7Yk2NcB5hJ8sDf1Gm4Qa6Ue0Ri9Ot3w.ics",
        "webcal": "webcal://schedule.example.org/feeds/0f8e2d4c6b1a39578e2d4c6b1a395780.Xq3v9LrT0pWz7Yk2NcB5hJ8sDf1Gm4Qa6Ue0Ri9Ot3w.ics"
    }
}

HISTORY: dict[str, Any] = {
    "items": [
        {
            "id": "9b1d3c2a-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
            "seq": 1,
            "type": "recovery_confirmed",
            "date": "2026-03-09",
            "cycle": None,
            "reason": None,
            "description": None,
            "event_id": None,
            "reason_code": None,
            "version": None,
            "changes": [],
            "visit_id": None,
            "purpose": None,
            "note": None,
            "recorded_by": "edc",
            "recorded_at": "2026-03-10T02:15:00+00:00",
            "voided_by": None
        },
        {
            "id": "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
            "seq": 2,
            "type": "enrolment_corrected",
            "date": None,
            "cycle": None,
            "reason": "CRF reviewed",
            "description": None,
            "event_id": None,
            "reason_code": None,
            "version": None,
            "changes": [
                "childbearing_potential: False -> True"
            ],
            "visit_id": None,
            "purpose": None,
            "note": None,
            "recorded_by": "edc",
            "recorded_at": "2026-03-10T02:15:00+00:00",
            "voided_by": None
        }
    ]
}

PARTICIPANT_FEED: dict[str, Any] = {
    "feed": {
        "https": "https://schedule.example.org/feeds/0f8e2d4c6b1a39578e2d4c6b1a395780.Xq3v9LrT0pWz7Yk2NcB5hJ8sDf1Gm4Qa6Ue0Ri9Ot3w.ics",
        "webcal": "webcal://schedule.example.org/feeds/0f8e2d4c6b1a39578e2d4c6b1a395780.Xq3v9LrT0pWz7Yk2NcB5hJ8sDf1Gm4Qa6Ue0Ri9Ot3w.ics"
    }
}

SITE_FEED: dict[str, Any] = {
    "feed": {
        "https": "https://schedule.example.org/feeds/site/0f8e2d4c6b1a39578e2d4c6b1a395780.Xq3v9LrT0pWz7Yk2NcB5hJ8sDf1Gm4Qa6Ue0Ri9Ot3w.ics",
        "webcal": "webcal://schedule.example.org/feeds/site/0f8e2d4c6b1a39578e2d4c6b1a395780.Xq3v9LrT0pWz7Yk2NcB5hJ8sDf1Gm4Qa6Ue0Ri9Ot3w.ics"
    }
}

WORKLIST: dict[str, Any] = {
    "from": "2026-03-10",
    "to": "2026-03-17",
    "today": "2026-03-10",
    "days": [
        {
            "date": "2026-02-24",
            "visits": [
                {
                    "subject_code": "ZS-001",
                    "participant_id": "3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c",
                    "visit_id": "BASELINE-IMAGING",
                    "kind": "baseline_imaging",
                    "title": "Baseline imaging (measurable target lesion, mRECIST (2019))",
                    "date": "2026-02-24",
                    "window": {
                        "earliest": "2026-02-09",
                        "latest": "2026-03-01"
                    },
                    "status": "overdue"
                }
            ]
        },
        {
            "date": "2026-02-28",
            "visits": [
                {
                    "subject_code": "ZS-001",
                    "participant_id": "3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c",
                    "visit_id": "PREGNANCY",
                    "kind": "pregnancy_test",
                    "title": "Serum pregnancy test",
                    "date": "2026-02-28",
                    "window": {
                        "earliest": "2026-02-16",
                        "latest": "2026-03-01"
                    },
                    "status": "overdue"
                }
            ]
        }
    ]
}

DEVIATIONS: dict[str, Any] = {
    "today": "2026-03-10",
    "items": [
        {
            "participant_id": "3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c",
            "subject_code": "ZS-001",
            "deviations": [
                {
                    "visit_id": "BASELINE-IMAGING",
                    "kind": "baseline_imaging",
                    "title": "Baseline imaging (measurable target lesion, mRECIST (2019))",
                    "date": "2026-02-24",
                    "window": {
                        "earliest": "2026-02-09",
                        "latest": "2026-03-01"
                    },
                    "status": "overdue",
                    "deviation": "overdue",
                    "rule": "baseline-imaging",
                    "reason": None
                },
                {
                    "visit_id": "PREGNANCY",
                    "kind": "pregnancy_test",
                    "title": "Serum pregnancy test",
                    "date": "2026-02-28",
                    "window": {
                        "earliest": "2026-02-16",
                        "latest": "2026-03-01"
                    },
                    "status": "overdue",
                    "deviation": "overdue",
                    "rule": "pregnancy-test",
                    "reason": None
                }
            ]
        }
    ]
}

DEVIATIONS_CSV = (
    "subject_code,participant_id,visit_id,title,date,window_earliest,window_latest,status,deviation,rule,reason\r\n"
    "ZS-001,3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c,BASELINE-IMAGING,\"Baseline imaging (measurable target lesion, mRECIST (2019))\",2026-02-24,2026-02-09,2026-03-01,overdue,overdue,baseline-imaging,\r\n"
    "ZS-001,3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c,PREGNANCY,Serum pregnancy test,2026-02-28,2026-02-16,2026-03-01,overdue,overdue,pregnancy-test,\r\n")

CALENDAR = (
    "BEGIN:VCALENDAR\r\n"
    "VERSION:2.0\r\n"
    "PRODID:-//trial-schedule//NCT07064876 visit schedule//EN\r\n"
    "CALSCALE:GREGORIAN\r\n"
    "NAME:NCT07064876 schedule\r\n"
    "X-WR-CALNAME:NCT07064876 schedule\r\n"
    "REFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n"
    "X-PUBLISHED-TTL:PT1H\r\n"
    "BEGIN:VEVENT\r\n"
    "SUMMARY:Baseline imaging (measurable target lesion\\, mRECIST (2019))\r\n"
    "DTSTART;VALUE=DATE:20260224\r\n"
    "DTEND;VALUE=DATE:20260225\r\n"
    "DTSTAMP:20261125T000000Z\r\n"
    "UID:76d20bad-f9a7-596c-a4c6-a1efd5718f5b\r\n"
    "SEQUENCE:0\r\n"
    "CATEGORIES:baseline_imaging\r\n"
    "DESCRIPTION:Baseline imaging (measurable target lesion\\, mRECIST (2019))\\n\r\n"
    " window 2026-02-09 to 2026-03-01\\nwhy: cryoablation 2026-03-02 - 7 days\\, w\r\n"
    " ithin 28 days before C1D1 2026-03-09 (rule baseline-imaging\\, record)\\nmov\r\n"
    " ed from 2026-02-23: 2026-02-23 is a Spring Festival holiday\\nstatus: overd\r\n"
    " ue\r\n"
    "LAST-MODIFIED:20261125T000000Z\r\n"
    "STATUS:CONFIRMED\r\n"
    "TRANSP:TRANSPARENT\r\n"
    "X-TRIAL-VISIT-ID:BASELINE-IMAGING\r\n"
    "X-TRIAL-VISIT-STATUS:overdue\r\n"
    "X-TRIAL-WINDOW-EARLIEST:2026-02-09\r\n"
    "X-TRIAL-WINDOW-LATEST:2026-03-01\r\n"
    "END:VEVENT\r\n"
    "END:VCALENDAR\r\n")

PROTOCOL: dict[str, Any] = {
    "id": "NCT07064876",
    "version": "2026-11-25.2",
    "title": "Serplulimab Combined With Cryoablation for Early-Stage Non-Small Cell Lung Cancer",
    "response_criteria": "mRECIST (2019)",
    "study_start": "2025-10-31",
    "study_completion": "2027-09-30",
    "rules": [
        {
            "id": "study-period",
            "source": "record",
            "text": "Study Start Date 2025-10-31; Study Completion Date 2027-09-30 (estimated). Repeating series (response imaging, survival follow-up, infusions) end at completion; single obligations after it (end of treatment, safety follow-up, contraception end, 1-year landmark) are kept with a warning: a participant's safety follow-up is never dropped.",
            "params": {
                "start": "2025-10-31",
                "completion": "2027-09-30"
            }
        },
        {
            "id": "cryoablation",
            "source": "record",
            "text": "Cryoablation will be performed first to locally ablate the tumor. Procedure done once (per-protocol) prior to systemic therapy.",
            "params": {}
        }
    ],
    "versions": [
        {
            "version": "2025-09-15.1",
            "revision": 1,
            "modified": "2025-09-15T00:00:00+00:00",
            "current": False
        },
        {
            "version": "2026-11-25.2",
            "revision": 2,
            "modified": "2026-11-25T00:00:00+00:00",
            "current": True
        }
    ]
}
