"""`panel serve app.py`: the rtu-lab page. A thin entry point; the components live in lab/."""

import panel as pn

from lab.app import LabApp
from lab.worker import start_process_server

pn.extension(notifications=True)
start_process_server()
LabApp().template().servable()
