"""The desktop app: the tray (the only pystray importer), the menu as data, icons, notifications,
the controller and runner that tie them to the broker, start at login, one broker per user.
"""
