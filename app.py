"""`panel serve app.py`: the rtu-lab page. A thin entry point; the components live in lab/.

`panel serve app.py --args --max-runs N --max-steps S --max-hidden H --max-minutes M`: a teacher's limits for a class
on one server (lab/classroom.py)."""

import sys

import panel as pn

from lab import classroom
from lab.app import LabApp
from lab.worker import start_process_server

classroom.configure(sys.argv[1:])  # a teacher's limits: panel serve app.py --args --max-runs 4 --max-steps 100000 …
pn.extension(notifications=True)
start_process_server()
LabApp().template().servable()
