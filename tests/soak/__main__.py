from tests.soak.cli import main

raise SystemExit(main())
