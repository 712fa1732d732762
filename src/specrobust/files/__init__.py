"""Everything specrobust keeps on disk, low in the house (every layer asks it):

- ``layout``: the one owner of file names (run directories, records, temporary files, tags);
- ``storage``: atomic writes through directory descriptors, and bounded reads (JSON, YAML,
  regular files only);
- ``outputs``: the rule for what a command may write, and where;
- ``locks``: one writer at a time;
- ``ziparchive``: ZIP archives parsed once, by one strict rule.
"""
