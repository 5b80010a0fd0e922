// Loading the documents a user wants questions about: PDFs (text per page),
// plain text, Markdown and HTML, from files or folders.
#pragma once

#include <string>
#include <vector>

#include "embedapt/status.h"

namespace embedapt {

struct Page {
  int number = 1;  // 1-based; formats without pages have a single page 1
  std::string text;
};

struct Document {
  std::string path;  // where it was read from
  // The path relative to the folder given as input (the file name for an
  // input that is a file): stable across machines, so chunk ids derive from it.
  std::string name;
  std::vector<Page> pages;
};

// True when load_document knows the format of `path` (by its extension).
bool is_supported_document(const std::string& path);

// Reads one file: .pdf (poppler, one Page per page), .txt, .md/.markdown
// (markup stripped lightly), .html/.htm (visible text only). Text is returned
// as valid UTF-8 (invalid bytes replaced). IOError when the file cannot be
// read, Corruption when it cannot be parsed, NotSupported for other formats.
Status load_document(const std::string& path, const std::string& name, Document* doc);

// Loads every input: a file, or a folder walked recursively in sorted order
// (files of unsupported formats inside folders are ignored). A file that
// cannot be loaded is appended to *skipped (the status names it) and the rest
// go on. InvalidArgument when no document could be loaded.
Status load_documents(const std::vector<std::string>& inputs, std::vector<Document>* docs,
                      std::vector<Status>* skipped);

}  // namespace embedapt
