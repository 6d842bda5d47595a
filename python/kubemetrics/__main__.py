from kubemetrics.cli import main

raise SystemExit(main())
