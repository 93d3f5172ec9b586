"""Domain values: statuses, outcomes, notifications, deliveries and the settings; they import nothing above."""
