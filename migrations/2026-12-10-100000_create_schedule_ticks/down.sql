DROP TABLE IF EXISTS schedule_ticks;
