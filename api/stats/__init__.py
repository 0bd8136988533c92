"""Statistics for admins and department heads: 满意率 by point, window, item or department, and the
completion / on-time / overdue figures of cases (电子监察)."""
