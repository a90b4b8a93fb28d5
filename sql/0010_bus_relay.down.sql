DROP TABLE IF EXISTS bus_relay_marks;
