#!/usr/bin/env python3
"""Builds the monthly Google Trends panel from the weekly one (standard library only).

    python3 benches/monthly/make_panel.py data/samples/gtrends_pt_weekly_topics.csv \
        > data/samples/gtrends_pt_monthly_topics.csv

Each month's value is the mean of the weeks whose date (the week's Sunday, as Google Trends dates
weeks) falls in that calendar month; the output is a Google Trends-style wide file, `month` (the
1st of the month) then one column per topic. This is the same reading `kwi-train --freq monthly`
makes of the weekly file (periods are calendar months; observations in a month are averaged), so the
panel can be checked against it. Values are written with 12 significant digits.
"""
import csv
import sys
from collections import OrderedDict


def value(cell):
    cell = cell.strip()
    return 0.5 if cell == "<1" else float(cell)


with open(sys.argv[1], newline="") as f:
    rows = [r for r in csv.reader(f) if r]
while len(rows[0]) < 2:
    rows = rows[1:]
header, body = rows[0], rows[1:]
months = OrderedDict()
for r in body:
    key = r[0][:7]
    months.setdefault(key, []).append([value(c) for c in r[1:]])
out = csv.writer(sys.stdout, lineterminator="\n")
out.writerow(["month"] + header[1:])
for key, weeks in months.items():
    means = [sum(w[j] for w in weeks) / len(weeks) for j in range(len(header) - 1)]
    out.writerow([key + "-01"] + ["%.12g" % m for m in means])
