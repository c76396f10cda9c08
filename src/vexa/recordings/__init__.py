"""Meeting recordings: where their bytes live, how chunks become files, and their JSON records."""
