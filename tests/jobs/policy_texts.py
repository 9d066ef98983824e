"""Policy files shared by the retention tests (line numbers matter: tests name them)."""

GOOD = """\
# Retention policies of RU-FSSP
[[policy]]
name = "kz-requests"
agreement = "cis-enforcement"
kind = ["Request", "AdditionalInfoAnswer"]
direction = "in"
party = "KZ"
counts_from = "proceeding-closed"
keep = "3 years"

[[policy]]
name = "cis-all"
agreement = "cis-enforcement"
counts_from = "conversation-closed"
keep = "5 years"

[[policy]]
name = "courts-all"
agreement = "ru-kz-supreme-courts"
counts_from = "received"
keep = "18 months"
"""
