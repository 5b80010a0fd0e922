#include "core/generate/loader.h"

#include <poppler-document.h>
#include <poppler-global.h>
#include <poppler-page.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>
#include <system_error>

#include "core/common/files.h"
#include "core/common/utf8.h"
#include "core/generate/markup.h"

namespace embedapt {

namespace fs = std::filesystem;

namespace {

std::string extension_of(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

// Poppler reports recoverable PDF syntax errors on stderr by default; the
// loader reports failures itself, so that chatter is silenced.
void quiet_poppler(const std::string&, void*) {}

Status load_pdf(const std::string& path, Document* doc) {
  poppler::set_debug_error_function(quiet_poppler, nullptr);
  std::unique_ptr<poppler::document> pdf(poppler::document::load_from_file(path));
  if (!pdf) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return Status::IOError(path + ": cannot open");
    return Status::Corruption(path + ": not a readable PDF");
  }
  if (pdf->is_locked()) return Status::NotSupported(path + ": the PDF is encrypted");
  for (int i = 0; i < pdf->pages(); ++i) {
    std::unique_ptr<poppler::page> page(pdf->create_page(i));
    if (!page) return Status::Corruption(path + ": page " + std::to_string(i + 1) + " cannot be read");
    // Reading order, not physical layout: columns come out one after another
    // instead of interleaved line by line with runs of padding spaces.
    poppler::byte_array utf8 =
        page->text(poppler::rectf(), poppler::page::non_raw_non_physical_layout).to_utf8();
    doc->pages.push_back({i + 1, to_valid_utf8(std::string_view(utf8.data(), utf8.size()))});
  }
  return Status::OK();
}

}  // namespace

bool is_supported_document(const std::string& path) {
  std::string ext = extension_of(path);
  return ext == ".pdf" || ext == ".txt" || ext == ".md" || ext == ".markdown" || ext == ".html" ||
         ext == ".htm";
}

Status load_document(const std::string& path, const std::string& name, Document* doc) {
  if (!is_supported_document(path)) {
    return Status::NotSupported(path + ": unsupported format (expected .pdf, .txt, .md or .html)");
  }
  *doc = Document{path, name, {}};
  std::string ext = extension_of(path);
  if (ext == ".pdf") return load_pdf(path, doc);
  std::string bytes;
  EMBEDAPT_RETURN_IF_ERROR(read_file(path, &bytes));
  std::string text;
  if (ext == ".html" || ext == ".htm") {
    text = html_to_text(bytes);
  } else if (ext == ".md" || ext == ".markdown") {
    text = markdown_to_text(bytes);
  } else {
    text = to_valid_utf8(bytes);
  }
  doc->pages.push_back({1, std::move(text)});
  return Status::OK();
}

Status load_documents(const std::vector<std::string>& inputs, std::vector<Document>* docs,
                      std::vector<Status>* skipped) {
  docs->clear();
  for (const std::string& input : inputs) {
    std::error_code ec;
    std::vector<std::pair<std::string, std::string>> files;  // (path, name)
    if (fs::is_directory(input, ec)) {
      fs::recursive_directory_iterator it(input, fs::directory_options::skip_permission_denied, ec);
      for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec) && is_supported_document(it->path().string())) {
          files.emplace_back(it->path().string(), it->path().lexically_relative(input).generic_string());
        }
      }
      if (ec) skipped->push_back(Status::IOError(input + ": cannot list the folder: " + ec.message()));
      std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    } else {
      files.emplace_back(input, fs::path(input).filename().generic_string());
    }
    for (const auto& [path, name] : files) {
      const std::string& doc_name = name;  // C++17 lambdas cannot capture a structured binding
      bool taken = std::any_of(docs->begin(), docs->end(),
                               [&doc_name](const Document& d) { return d.name == doc_name; });
      if (taken) {
        // Chunk ids derive from the name: two documents sharing one would collide.
        return Status::InvalidArgument("another input is also named \"" + name +
                                       "\"; pass their common parent folder instead")
            .WithContext(path);
      }
      Document doc;
      Status s = load_document(path, name, &doc);
      if (s.ok()) {
        docs->push_back(std::move(doc));
      } else {
        skipped->push_back(s);
      }
    }
  }
  if (docs->empty()) return Status::InvalidArgument("no readable document among the inputs");
  return Status::OK();
}

}  // namespace embedapt
