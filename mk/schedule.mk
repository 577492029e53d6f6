# Schedules (lib/cron.c, lib/tz.c, lib/schedule.c): rrules run on libical;
# tests/scenario/schedule_oracle.sh checks the slots against croniter and
# dateutil through a small driver linked with libpushpool.a.
PKGS += libical
DEB_PKGS += libical-dev
TEST_DEB_PKGS += python3-croniter python3-dateutil tzdata

SCHED_ORACLE := $(BUILD)/tests/schedule_oracle

$(SCHED_ORACLE): tests/schedule_oracle.c $(BUILD)/libpushpool.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libpushpool.a $(LDLIBS)

# The scenario finds the driver beside the binary it tests.
all: $(SCHED_ORACLE)
