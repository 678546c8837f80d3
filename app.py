"""`panel serve app.py`: the rtu-lab page. A thin entry point; the components live in lab/."""

import panel as pn

from lab.app import LabApp

pn.extension(notifications=True)
LabApp().template().servable()
