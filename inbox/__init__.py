"""The alert inbox: a small web app where CSMs, managers and admins see and act on their alerts."""
