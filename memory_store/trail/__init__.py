"""The audit trail as the service uses it: recording (recorder), appending and checkpointing
(log), reading back whole (verification). Its SQL is in storage/audit_trail.py and
storage/audit_writer.py; the record format, chain and signatures are the `audit` library."""
