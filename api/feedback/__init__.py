"""好差评 (evaluations of decided cases) and 咨询投诉建议 (consultations, complaints, suggestions)."""
